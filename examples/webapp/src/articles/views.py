from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_safe

from .models import Article

MAX_LIMIT = 1000


@require_safe
def article_list(request: HttpRequest) -> JsonResponse:
    """JSON list of articles, oldest first; ?limit=N (default 100, at most 1000) and ?offset=N."""
    try:
        limit = min(max(int(request.GET.get("limit", 100)), 0), MAX_LIMIT)
        offset = max(int(request.GET.get("offset", 0)), 0)
    except ValueError:
        return JsonResponse({"error": "limit and offset must be integers"}, status=400)
    articles = Article.objects.order_by("id")[offset : offset + limit]
    return JsonResponse([article.as_dict() for article in articles], safe=False)
