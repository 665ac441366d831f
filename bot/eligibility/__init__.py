"""Eligibility: model facts × support matrices × GPU targets → the plan and the BuildSpecs to queue."""
