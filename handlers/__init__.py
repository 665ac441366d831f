"""quantbot handlers package."""
