"""The post-race report: analysis (pure), figures (Plotly), render (kaleido, one browser), pdf (reportlab), build."""
