"""What the bot shows about itself: the status page and Prometheus metrics."""
