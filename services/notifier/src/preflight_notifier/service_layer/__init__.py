"""Use cases: apply events, fire reminders, flush alert groups, deliver."""
