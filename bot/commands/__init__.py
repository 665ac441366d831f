"""One module per `quantbot` command, each exposing a click command named `command`."""
