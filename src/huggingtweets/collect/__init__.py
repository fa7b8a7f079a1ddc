"""collect: read an account's posts from a source into one normalized record per post.

The registry (``registry.py``) knows no platform: each file format and live platform is a
module that registers itself when imported. This package imports them, in the order they
are tried (an export's own files before the general .csv / .jsonl / .txt) and the help
lists them; a live platform's client library loads only when one of its sources is used.
"""

from huggingtweets.collect import sample, x_export, mastodon_export, files  # noqa: F401, I001
from huggingtweets.collect.live import x_api, bluesky, mastodon_api  # noqa: F401
