"""The demo: a friendly project with its judged history (demo/data/) and a tiny base model, made by
`manage.py seed_demo` and `manage.py demo_model`. It sits at the top: it seeds every app, and no app imports it."""
