"""The review of a submission: its planned jobs and their outcomes, the report computed from them
under the risk policy, signed and versioned."""
