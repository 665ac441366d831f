"""quantbot builders package."""
