from churnguard.cli import app

app()
