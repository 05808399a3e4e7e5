"""Online submission (申报), case processing and progress (过程查询)."""
