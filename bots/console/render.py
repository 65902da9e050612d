"""A ``Reply`` → files in the output folder and lines on the terminal."""

from __future__ import annotations

from pathlib import Path

from core.messages import Progress, Reply

_EXTENSIONS = {"image/webp": ".webp", "image/png": ".png", "image/jpeg": ".jpg"}


def save_images(reply: Reply, out_dir: Path) -> list[Path]:
    """Write each image under a name made of the generation id and its index; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = reply.generation_id or "reply"
    paths = []
    for index, image in enumerate(reply.images):
        path = out_dir / f"{stem}-{index}{_EXTENSIONS.get(image.mime_type, '.bin')}"
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(image.data)
        tmp.replace(path)
        paths.append(path)
    return paths


def reply_lines(reply: Reply, paths: list[Path]) -> list[str]:
    """What the terminal shows for a reply: an error line, or text, metadata and image paths."""
    if reply.error:
        return [f"error: {reply.error}"]
    lines = [reply.text] if reply.text else []
    meta = reply.metadata
    if meta:
        described = ", ".join(
            f"{key}: {meta[key]}"
            for key in ("style", "category", "model", "seed", "kudos", "worker")
            if meta.get(key) not in (None, "")
        )
        if described:
            lines.append(f"  ({described})")
    for path, image in zip(paths, reply.images, strict=True):
        lines.append(f"{path}" + ("  [censored]" if image.censored else ""))
    return lines


def progress_line(progress: Progress) -> str:
    """One short progress line."""
    if progress.phase == "waiting" and progress.queue_position:
        return (
            f"… {progress.generation_id[:8]} queued at {progress.queue_position}, "
            f"~{progress.wait_time}s"
        )
    return (
        f"… {progress.generation_id[:8]} {progress.phase} "
        f"({progress.finished}/{progress.total}), ~{progress.wait_time}s"
    )
