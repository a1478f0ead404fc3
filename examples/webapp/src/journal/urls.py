from django.contrib import admin
from django.urls import path

from articles import views as article_views
from certificates import views as certificate_views

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("health/", views.health, name="health"),
    path("version/", views.version, name="version"),
    path("api/articles/", article_views.article_list, name="article-list"),
    path("api/certificates/", certificate_views.certificate_create, name="certificate-create"),
    path("api/certificates/<uuid:certificate_id>/", certificate_views.certificate_detail, name="certificate-detail"),
    path("admin/", admin.site.urls),
]
