"""Gateway: the public HTTP face (course routes, `/api/v1`), the only owner of the jobs database.

Streams uploads into the blob store, records jobs with a transactional outbox, applies the
converter's job events and queues one notification per outcome. It verifies tokens but never
touches the users database, never spawns ffmpeg and never sends mail.
"""
