"""earshot: video to audio conversion as four services (auth, gateway, converter, notifier)."""

__version__ = "0.1.0"
