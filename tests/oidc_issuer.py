"""A small, independent OpenID Connect token issuer for tests, run as its own process.

It is not Bastion: it signs with RS256 through joserfc (Authlib's JOSE library), publishes
discovery and a JWKS over HTTPS, and runs the client credentials grant for one client.
Test-only routes mint a token with given claims and headers, rotate the signing key, and
count how often the JWKS was fetched.

Run: python tests/oidc_issuer.py --port P --cert C --key K
"""

from __future__ import annotations

import argparse
import base64
import time
import uuid

import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

CLIENT_ID, CLIENT_SECRET = "corp-app", "corp-app-secret"
ROLES = ["ml-analyst"]


def build(issuer: str) -> Starlette:
    keys = [_new_key()]
    fetches = {"jwks": 0}

    def sign(claims: dict, header: dict | None = None) -> str:
        key = keys[-1]
        base = {"alg": "RS256", "typ": "at+jwt", "kid": key.kid}
        return jwt.encode(base | (header or {}), claims, key, algorithms=["RS256", "HS256"])

    def claims_for(subject: str, **extra: object) -> dict:
        now = int(time.time())
        return {
            "iss": issuer, "aud": "bastion", "sub": subject, "iat": now, "exp": now + 300,
            "jti": uuid.uuid4().hex, "roles": ROLES, "department": "fraud",
        } | extra  # fmt: skip

    async def discovery(_: Request) -> JSONResponse:
        return JSONResponse({
            "issuer": issuer, "jwks_uri": f"{issuer}/jwks", "token_endpoint": f"{issuer}/token",
            "grant_types_supported": ["client_credentials"],
        })  # fmt: skip

    async def jwks(_: Request) -> JSONResponse:
        fetches["jwks"] += 1
        return JSONResponse({"keys": [k.as_dict(private=False) for k in keys]})

    async def token(request: Request) -> JSONResponse:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        given = base64.b64decode(encoded or "Og==").decode() if scheme == "Basic" else ":"
        form = await request.form()
        if given != f"{CLIENT_ID}:{CLIENT_SECRET}" or form.get("grant_type") != (
            "client_credentials"
        ):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        value = sign(claims_for(CLIENT_ID))
        return JSONResponse({"access_token": value, "token_type": "Bearer", "expires_in": 300})

    async def mint(request: Request) -> JSONResponse:
        body = await request.json()
        claims = claims_for(body.get("sub", "svc-1"), **body.get("claims", {}))
        return JSONResponse({"token": sign(claims, body.get("header"))})

    async def rotate(_: Request) -> JSONResponse:
        keys.append(_new_key())
        return JSONResponse({"kid": keys[-1].kid})

    async def stats(_: Request) -> JSONResponse:
        return JSONResponse(fetches)

    return Starlette(routes=[
        Route("/.well-known/openid-configuration", discovery),
        Route("/jwks", jwks),
        Route("/token", token, methods=["POST"]),
        Route("/test/mint", mint, methods=["POST"]),
        Route("/test/rotate", rotate, methods=["POST"]),
        Route("/test/stats", stats),
    ])  # fmt: skip


def _new_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": uuid.uuid4().hex[:12], "use": "sig"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    app = build(f"https://127.0.0.1:{args.port}")
    uvicorn.run(app, host="127.0.0.1", port=args.port, ssl_certfile=args.cert,
                ssl_keyfile=args.key, log_level="warning")  # fmt: skip


if __name__ == "__main__":
    main()
