import json
import logging
import uuid

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe

from articles.models import Article

from .models import Certificate
from .tasks import generate_certificate

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def certificate_create(request: HttpRequest) -> JsonResponse:
    """Body {"article_id": int, "recipient": str}: creates a certificate and queues its generation."""
    try:
        payload = json.loads(request.body or b"{}")
        article_id = int(payload["article_id"])
        recipient = str(payload["recipient"]).strip()
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": 'expected JSON {"article_id": <int>, "recipient": <str>}'}, status=400)
    if not recipient:
        return JsonResponse({"error": "recipient must not be empty"}, status=400)
    article = Article.objects.filter(pk=article_id).first()
    if article is None:
        return JsonResponse({"error": f"article {article_id} does not exist"}, status=404)

    task_id = str(uuid.uuid4())
    with transaction.atomic():
        certificate = Certificate.objects.create(article=article, recipient=recipient, task_id=task_id)
    # The row is committed before the task is sent, so the worker always finds it.
    try:
        generate_certificate.apply_async(args=[str(certificate.certificate_id)], task_id=task_id)
    except Exception:
        # The certificate stays PENDING: `manage.py requeue_certificates` sends it again later.
        logger.exception("could not queue certificate %s", certificate.certificate_id)
        return JsonResponse({**certificate.as_dict(), "error": "queued: no, broker unavailable"}, status=503)
    return JsonResponse(certificate.as_dict(), status=202)


@require_safe
def certificate_detail(request: HttpRequest, certificate_id: uuid.UUID) -> JsonResponse:
    certificate = get_object_or_404(Certificate, certificate_id=certificate_id)
    return JsonResponse(certificate.as_dict())
