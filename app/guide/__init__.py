"""The guide a citizen sees: a read model assembled above the catalogue, codes and feedback."""
