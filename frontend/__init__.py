"""The pages people use: annotator page, lead dashboard, run pages."""
