"""Auth: the sole owner of users (argon2id password hashes) and of access tokens (signing, JWKS).

Serves `/login` and `/validate` for the course, `/api/v1/auth/token`, `/api/v1/users` and
`/.well-known/jwks.json`. It never touches jobs, blobs, queues or mail, nor another service.
"""
