"""Advisory cases: members ask, advisers triage, answer and close cases on time, in confidence."""
