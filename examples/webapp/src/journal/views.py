from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from articles.models import Article

from .health import run_checks


@require_safe
def index(request: HttpRequest) -> HttpResponse:
    context = {
        "article_count": Article.objects.count(),
        "version": settings.JOURNAL_RELEASE,
        "hostname": settings.JOURNAL_HOSTNAME,
    }
    return render(request, "index.html", context)


@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    """200 when database, redis and celery are all "ok", 503 otherwise."""
    components = run_checks()
    healthy = all(value == "ok" for value in components.values())
    body = {
        "status": "ok" if healthy else "degraded",
        "components": components,
        "version": settings.JOURNAL_RELEASE,
        "hostname": settings.JOURNAL_HOSTNAME,
    }
    return JsonResponse(body, status=200 if healthy else 503)


@never_cache
@require_safe
def version(request: HttpRequest) -> JsonResponse:
    """Which release this process serves; touches neither the database nor Redis."""
    return JsonResponse({"version": settings.JOURNAL_RELEASE, "hostname": settings.JOURNAL_HOSTNAME})
