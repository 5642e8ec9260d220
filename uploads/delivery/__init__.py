"""The delivery engine: outbound sends, their exchanges, safety and retries."""
