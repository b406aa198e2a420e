"""Verifies an authgate access token with PyJWT (an independent JWT
library), the way a Python service would: the key chosen by the token's
`kid` from the JWK Set, with that key's own algorithm (ES256 or RS256
only), `typ` at+jwt, issuer and audience checked. Prints the claims as JSON, or `refused: <reason>` and exits 1.

    python3 verify.py <jwks.json file> <token> <issuer> <audience> [leeway seconds]

The leeway covers a test server whose clock runs ahead of the wall clock.
"""

import json
import sys

import jwt

jwks_path, token, issuer, audience = sys.argv[1:5]
leeway = int(sys.argv[5]) if len(sys.argv) > 5 else 0
with open(jwks_path) as f:
    keys = jwt.PyJWKSet.from_dict(json.load(f))
try:
    header = jwt.get_unverified_header(token)
    if header.get("typ") != "at+jwt":
        raise jwt.InvalidTokenError("typ is not at+jwt")
    key = next((k for k in keys.keys if k.key_id == header.get("kid")), None)
    if key is None:
        raise jwt.InvalidTokenError("unknown kid")
    if key.algorithm_name not in ("ES256", "RS256"):
        raise jwt.InvalidTokenError(f"the key's algorithm {key.algorithm_name} is not accepted")
    claims = jwt.decode(
        token,
        key.key,
        algorithms=[key.algorithm_name],
        audience=audience,
        issuer=issuer,
        leeway=leeway,
        options={"require": ["exp", "iat", "sub", "aud", "iss", "jti"]},
    )
except jwt.PyJWTError as e:
    print(f"refused: {e}")
    sys.exit(1)
print(json.dumps(claims))
