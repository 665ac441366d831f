"""The build launcher: one build process started, watched or re-attached (execution, verification, build)."""
