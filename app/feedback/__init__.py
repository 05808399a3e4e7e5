"""Consultation (咨询), ratings (好差评) and the rectification of bad ratings (差评整改)."""
