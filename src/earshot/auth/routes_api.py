"""The real API: `/api/v1/auth/token`, `/api/v1/users` (admins) and the public JWKS."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, EmailStr, Field, ValidationError, model_validator

from earshot.auth.deps import Admin, Client, Services, Session
from earshot.auth.login import LoginFailed, LoginThrottled, sign_in
from earshot.auth.passwords import WeakPassword, check_password
from earshot.auth.users import UserExists, create_user
from earshot.common.problems import Conflict, Problem, TooManyRequests, Unauthorized

router = APIRouter(prefix="/api/v1", tags=["auth"])
jwks_router = APIRouter(tags=["auth"])
MAX_CREDENTIALS_BYTES = 16 * 1024
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class TokenRequest(BaseModel):
    """Credentials: `email` (or the OAuth2/course name `username`) and `password`."""

    email: str | None = Field(default=None, max_length=320)
    username: str | None = Field(default=None, max_length=320)
    password: str = Field(max_length=4096)

    @model_validator(mode="after")
    def _needs_an_account(self) -> TokenRequest:
        if not (self.email or self.username):
            raise ValueError("`email` (or `username`) is required")
        return self

    @property
    def account(self) -> str:
        """The email the caller signs in with."""
        return self.email or self.username or ""


class TokenResponse(BaseModel):
    """An OAuth2-style bearer token response."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the OAuth2 token type)
    expires_in: int = Field(description="Seconds until the token expires.")


class NewUser(BaseModel):
    """A user to create."""

    email: EmailStr
    password: str = Field(max_length=1024)
    is_admin: bool = False


class UserOut(BaseModel):
    """A user as the API shows it (never the password hash)."""

    id: str
    email: str
    is_admin: bool
    created_at: datetime


_TOKEN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": TokenRequest.model_json_schema()},
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "username": {"type": "string"},
                        "password": {"type": "string", "format": "password"},
                        "grant_type": {"type": "string", "enum": ["password"]},
                    },
                }
            },
        },
    }
}


async def read_credentials(request: Request) -> TokenRequest:
    """Credentials from a JSON body or an OAuth2 password form; 415/413/422 problems otherwise."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    length = request.headers.get("content-length", "0")
    if not length.isdigit() or int(length) > MAX_CREDENTIALS_BYTES:
        raise Problem("credentials are at most 16 KiB", status=413, title="Content Too Large")
    try:
        if media_type == "application/json" or media_type.endswith("+json"):
            return TokenRequest.model_validate_json(await request.body())
        if media_type in FORM_TYPES:
            async with request.form() as form:
                fields = {k: v for k, v in form.items() if isinstance(v, str)}
            return TokenRequest.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from exc
    raise Problem(
        "send the credentials as JSON or as a form", status=415, title="Unsupported Media Type"
    )


@router.post(
    "/auth/token",
    response_model=TokenResponse,
    summary="Exchange email and password for an access token",
    openapi_extra=_TOKEN_BODY,
    responses={401: {"description": "Wrong email or password"}, 429: {"description": "Throttled"}},
)
async def issue_token(
    request: Request, response: Response, services: Services, session: Session, client: Client
) -> TokenResponse:
    """JSON `{"email", "password"}` or an OAuth2 password form → a bearer token."""
    credentials = await read_credentials(request)
    try:
        issued = await sign_in(
            services,
            session,
            email=credentials.account,
            password=credentials.password,
            client=client,
        )
    except LoginThrottled as exc:
        raise TooManyRequests(
            "too many failed sign-in attempts; try again later",
            headers={"Retry-After": str(exc.retry_after)},
        ) from exc
    except LoginFailed as exc:
        raise Unauthorized("wrong email or password") from exc
    response.headers["Cache-Control"] = "no-store"
    return TokenResponse(access_token=issued.token, expires_in=issued.expires_in)


@router.post(
    "/users",
    status_code=201,
    response_model=UserOut,
    summary="Create a user (admins only)",
    responses={401: {}, 403: {}, 409: {"description": "The email is taken"}},
)
async def register_user(
    body: NewUser, admin: Admin, services: Services, session: Session
) -> UserOut:
    """Create a user; the caller must hold an admin token."""
    settings = services.settings
    try:
        password = check_password(body.password, min_length=settings.password_min_length)
        user = await create_user(
            session,
            email=body.email,
            password=password,
            is_admin=body.is_admin,
            passwords=services.passwords,
            min_password_length=settings.password_min_length,
        )
    except WeakPassword as exc:
        raise Problem(str(exc), status=422, title="Unprocessable Content") from exc
    except UserExists as exc:
        raise Conflict(str(exc)) from exc
    return UserOut(id=user.id, email=user.email, is_admin=user.is_admin, created_at=user.created_at)


@jwks_router.get(
    "/.well-known/jwks.json", summary="Public keys that verify earshot's access tokens"
)
async def jwks(services: Services, response: Response) -> dict[str, list[dict[str, Any]]]:
    """The JWK Set (no keys in HS256 mode, whose secret is never published)."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return services.signing_key.jwks()
