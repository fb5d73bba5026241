"""Training code (torch, transformers, TRL, peft): imported only inside worker tasks, never by the web process."""
