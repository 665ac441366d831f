"""Publishing: a finished build becomes a release repo or pull request with its card."""
