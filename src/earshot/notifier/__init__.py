"""The notifier: consumes job outcomes (`JobFinished`, queue `mp3`) and emails the user once each.

Owns its database of sent notifications (what makes redeliveries harmless) and the emails' text.
Must not touch jobs, users or blobs, nor import another service: the message is all it knows.
"""
