"""Unified identity: accounts, logins, tokens and guards."""
