"""The matter catalogue: sections, departments, halls, matters and their versioned guides."""
