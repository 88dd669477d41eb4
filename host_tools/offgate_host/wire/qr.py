"""QR rendering for offgate QR texts (segno): alphanumeric mode, error correction level M."""
import io
from pathlib import Path

import segno

ERROR_LEVEL = "m"


def make(text: str) -> segno.QRCode:
    """The QR symbol for a QR text. Alphanumeric mode, level M, no error-level boosting (so the
    symbol is exactly what a level-M decoder budget assumes)."""
    return segno.make(text, error=ERROR_LEVEL, mode="alphanumeric", micro=False, boost_error=False)


def qr_version(text: str) -> int:
    return make(text).version


def render_png(text: str, path, scale: int = 6, border: int = 4) -> Path:
    path = Path(path)
    make(text).save(str(path), kind="png", scale=scale, border=border)
    return path


def render_svg(text: str, path, scale: int = 6, border: int = 4) -> Path:
    path = Path(path)
    make(text).save(str(path), kind="svg", scale=scale, border=border)
    return path


def render_terminal(text: str, compact: bool = True) -> str:
    """The symbol as a string for a terminal (compact: two modules per character cell)."""
    out = io.StringIO()
    make(text).terminal(out=out, compact=compact)
    return out.getvalue()
