"""quantbot bot package."""
