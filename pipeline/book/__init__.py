"""Books: the record (`record`), editing it after its pages are made (`edits`), and the
per-user store of books with their pictures (`store`)."""
from .record import (FORMAT_VERSION, MAX_TITLE_LENGTH, MAX_WORDS_LENGTH, UNTITLED, Book,
                     BookPage, Box, Illustration, Region, cast_of, check_language, clean_title,
                     clean_words)
from .store import RECORD, THUMBNAIL_SIZE, BookStore, GalleryItem, now

__all__ = ["FORMAT_VERSION", "MAX_TITLE_LENGTH", "MAX_WORDS_LENGTH", "UNTITLED", "Book",
           "BookPage", "Box", "Illustration", "Region", "cast_of", "check_language",
           "clean_title", "clean_words", "RECORD", "THUMBNAIL_SIZE", "BookStore", "GalleryItem",
           "now"]
