"""The one door to LXD: connection, requests, errors."""
