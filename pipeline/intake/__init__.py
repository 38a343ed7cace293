"""Taking photos in: opening uploads safely, finding and describing faces, judging quality."""
