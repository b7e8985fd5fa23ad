import typer

devices_app = typer.Typer(no_args_is_help=True)
registry_app = typer.Typer(no_args_is_help=True)


def provision() -> None:
    """Register a simulated fleet with credentials in one step."""
