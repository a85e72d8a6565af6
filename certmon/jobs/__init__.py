"""Scheduled jobs (apscheduler 3): each is handed a Runtime and does its work as of the instant it is given."""
