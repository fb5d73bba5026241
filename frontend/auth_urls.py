"""Django's login view under the pages' strict CSP; included before django.contrib.auth.urls so it wins."""

from django.contrib.auth import views as auth_views
from django.urls import path

from frontend.csp import strict_csp

urlpatterns = [path("accounts/login/", strict_csp(auth_views.LoginView.as_view()), name="login")]
