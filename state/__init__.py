"""quantbot state package."""
