-- Nothing to undo: the fixed-width values read back as the same instants with the code before migration 000017,
-- which would only go on writing new ones in the trimmed form.
SELECT 1;
