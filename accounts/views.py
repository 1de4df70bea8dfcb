"""Auth, own-profile and user-management API: thin views over ``accounts.selectors`` and ``accounts.services``."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobops.api import ScopedViewSet
from jobops.roles import ADMIN, ADMIN_ONLY, SALES_AGENT
from jobops.schema import ERROR_REF
from jobops.throttles import LOGIN_THROTTLES, PasswordChangeThrottle, login_failed, login_succeeded

from . import selectors, services
from .authentication import request_user
from .filters import UserFilter
from .serializers import (
    MeSerializer,
    MeUpdateSerializer,
    PasswordChangeSerializer,
    TokenObtainSerializer,
    TokenPairSerializer,
    TokenRefreshSerializer,
    UserCreateSerializer,
    UserListItemSerializer,
    UserPublicSerializer,
    UserReadSerializer,
    UserUpdateSerializer,
)

NO_BODY = OpenApiResponse(description="No content.")


UNAUTHORIZED = OpenApiResponse(ERROR_REF, description="Invalid, expired, used or revoked token.")
THROTTLED = OpenApiResponse(ERROR_REF, description="Too many attempts (per IP or per username).")


# --- tokens ------------------------------------------------------------------------------------------------------


class _TokenView(APIView):
    """The token endpoints take credentials in the body, not in a header: no authentication, no permission."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request: Request) -> str:
        # Without this DRF would turn the 401 of a bad credential into a 403.
        return 'Bearer realm="api"'

    def validated(self, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


class TokenObtainView(_TokenView):
    throttle_classes = list(LOGIN_THROTTLES)

    @extend_schema(
        summary="Log in: get an access and a refresh token",
        description=(
            "Wrong password, unknown username and inactive account give the same 401. Throttled per client IP "
            "(`LOGIN_RATE_PER_IP`, default 30/min), per username and client IP (`LOGIN_RATE_PER_USER`, default "
            "10/min) and by a per-username budget of failed attempts from anywhere (`LOGIN_FAILURES_PER_USER`, "
            "default 100/hour), which a correct password does not spend and which does not apply to a client that "
            "logged in as that user before."
        ),
        tags=["auth"],
        request=TokenObtainSerializer,
        responses={200: TokenPairSerializer, 401: UNAUTHORIZED, 429: THROTTLED},
    )
    def post(self, request: Request) -> Response:
        data = self.validated(TokenObtainSerializer)
        try:
            pair = services.token_obtain_pair(
                username=data["username"], password=data["password"], request=request._request
            )
        except AuthenticationFailed:
            login_failed(request, data["username"])
            raise
        login_succeeded(request, data["username"])
        return Response(pair)


class TokenRefreshView(_TokenView):
    @extend_schema(
        summary="Rotate a refresh token: get a new access and refresh token",
        description="The refresh token sent is blacklisted: using it again is a 401.",
        tags=["auth"],
        request=TokenRefreshSerializer,
        responses={200: TokenPairSerializer, 401: UNAUTHORIZED},
    )
    def post(self, request: Request) -> Response:
        data = self.validated(TokenRefreshSerializer)
        return Response(services.token_refresh(refresh=data["refresh"]))


class LogoutView(_TokenView):
    @extend_schema(
        summary="Log out: revoke a refresh token",
        description="The refresh token is the credential; no access token is needed.",
        tags=["auth"],
        request=TokenRefreshSerializer,
        responses={204: NO_BODY, 401: UNAUTHORIZED},
    )
    def post(self, request: Request) -> Response:
        data = self.validated(TokenRefreshSerializer)
        services.token_revoke(refresh=data["refresh"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class LogoutEverywhereView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Log out everywhere: end every session of your account",
        description=(
            "Every access and refresh token of your account issued until now is refused from now on (401), on every "
            "device, this one included. `POST /api/auth/logout/` ends one device's refresh token only."
        ),
        tags=["auth"],
        request=None,
        responses={204: NO_BODY},
    )
    def post(self, request: Request) -> Response:
        user = request_user(request)
        services.user_sign_out(actor=user, user_id=user.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- own profile -------------------------------------------------------------------------------------------------


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(summary="Your own profile", tags=["auth"], responses={200: MeSerializer})
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(request.user).data)

    @extend_schema(
        summary="Change your own profile",
        description="`role` and `is_active` are read-only here: sent, they are ignored.",
        tags=["auth"],
        request=MeUpdateSerializer,
        responses={200: MeSerializer},
    )
    def patch(self, request: Request) -> Response:
        user = request_user(request)
        serializer = MeUpdateSerializer(instance=user, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        services.user_update(actor=user, user_id=user.pk, data=serializer.validated_data)
        return Response(MeSerializer(selectors.user_get_self(user=user)).data)


class PasswordChangeView(APIView):
    permission_classes = [IsAuthenticated]
    throttle_classes = [PasswordChangeThrottle]

    @extend_schema(
        summary="Change your own password",
        description="Needs the old password; the new one must pass the password validators (400 with field errors).",
        tags=["auth"],
        request=PasswordChangeSerializer,
        responses={204: NO_BODY, 429: THROTTLED},
    )
    def post(self, request: Request) -> Response:
        serializer = PasswordChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = request_user(request)
        services.user_change_password(
            actor=user,
            user_id=user.pk,
            old_password=serializer.validated_data["old_password"],
            new_password=serializer.validated_data["new_password"],
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- users -------------------------------------------------------------------------------------------------------

_AUDIENCE = (
    "Admins see every user with every field; sales agents see only active technicians, with public fields "
    "(`id, username, first_name, last_name`); technicians get 403."
)


@extend_schema_view(
    list=extend_schema(
        summary="List users", description=_AUDIENCE, tags=["users"], responses={200: UserListItemSerializer(many=True)}
    ),
    retrieve=extend_schema(
        summary="Get a user", description=_AUDIENCE, tags=["users"], responses={200: UserListItemSerializer}
    ),
    create=extend_schema(
        summary="Create a user (admin)",
        tags=["users"],
        request=UserCreateSerializer,
        responses={201: UserReadSerializer},
    ),
    update=extend_schema(
        summary="Replace a user's fields (admin)",
        tags=["users"],
        request=UserUpdateSerializer,
        responses={200: UserReadSerializer},
    ),
    partial_update=extend_schema(
        summary="Change a user: profile, role, active flag, password (admin)",
        tags=["users"],
        request=UserUpdateSerializer,
        responses={200: UserReadSerializer},
    ),
    destroy=extend_schema(
        summary="Delete a user (admin)",
        description="A user referenced by any job cannot be deleted (409 `in_use`): deactivate them instead.",
        tags=["users"],
        responses={204: NO_BODY},
    ),
)
class UserViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Users. Admins manage everyone; sales agents look up active technicians for assignment."""

    selector = selectors.user_list_for
    filterset_class = UserFilter
    read_serializer_class = UserReadSerializer
    write_serializer_classes = {
        "create": UserCreateSerializer,
        "update": UserUpdateSerializer,
        "partial_update": UserUpdateSerializer,
    }
    allowed_roles = {
        "list": frozenset({ADMIN, SALES_AGENT}),
        "retrieve": frozenset({ADMIN, SALES_AGENT}),
        "create": ADMIN_ONLY,
        "update": ADMIN_ONLY,
        "partial_update": ADMIN_ONLY,
        "destroy": ADMIN_ONLY,
        "sign_out": ADMIN_ONLY,
    }
    lookup_value_regex = r"[0-9]+"

    def get_serializer_class(self) -> Any:
        if self.action in ("list", "retrieve") and getattr(self.request.user, "role", None) != ADMIN:
            return UserPublicSerializer
        return super().get_serializer_class()

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = self.validate_input(UserCreateSerializer)
        user = services.user_create(actor=request.user, data=data)
        return self.render(user, status_code=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        partial = kwargs.pop("partial", False)
        user = self.get_object()
        data = self.validate_input(UserUpdateSerializer, partial=partial, instance=user)
        user = services.user_update(actor=request.user, user_id=user.pk, data=data)
        return self.render(user)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        user = self.get_object()
        services.user_delete(actor=request.user, user_id=user.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Sign a user out everywhere (admin)",
        description="Every access and refresh token of the user issued until now is refused from now on (401).",
        tags=["users"],
        request=None,
        responses={204: NO_BODY},
    )
    @action(detail=True, methods=["post"], url_path="sign-out")
    def sign_out(self, request: Request, pk: str | None = None) -> Response:
        user = self.get_object()
        services.user_sign_out(actor=request.user, user_id=user.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)
