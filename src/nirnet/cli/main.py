"""Entry point of the ``nirnet`` command: assembles the verb groups."""

from __future__ import annotations

import typer
import typer.core

from nirnet import __version__
from nirnet.cli import data as data_cli
from nirnet.cli import demo as demo_cli
from nirnet.cli import denoise as denoise_cli
from nirnet.cli import detect as detect_cli
from nirnet.cli import eval as eval_cli
from nirnet.cli import export as export_cli
from nirnet.cli import family as family_cli
from nirnet.cli import imprint as imprint_cli
from nirnet.cli import scale as scale_cli
from nirnet.cli import serve as serve_cli
from nirnet.cli import train as train_cli


def _hide_flag_types() -> None:
    """Typer's help prints ``<bool>`` after on/off flags, which reads as if ``--json true`` were the syntax (it is
    ``--json``; "true" would become a path). Flags take no value, so show no type for them."""
    original = typer.core.TyperOption.display_type_rich
    if getattr(original, "_nirnet_patched", False):
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag else original(self, ctx)

    display_type_rich._nirnet_patched = True
    typer.core.TyperOption.display_type_rich = display_type_rich


_hide_flag_types()

app = typer.Typer(
    rich_markup_mode="markdown",
    name="nirnet",
    help="NIRNet: detect AI-generated images from the noise-based imprint of generative models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_cli.app, name="data")
app.add_typer(imprint_cli.app, name="imprint")
app.command("train")(train_cli.train)
app.command("pretrain-denoiser")(denoise_cli.pretrain_denoiser)
app.command("eval")(eval_cli.eval_command)
app.command("detect")(detect_cli.detect)
app.command("serve")(serve_cli.serve)
app.command("scale")(scale_cli.scale)
app.add_typer(export_cli.app, name="export")
app.command("demo")(demo_cli.demo)
app.add_typer(family_cli.app, name="family")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"nirnet {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """NIRNet command line. Run `nirnet COMMAND --help` for the options of each command."""


if __name__ == "__main__":
    app()
