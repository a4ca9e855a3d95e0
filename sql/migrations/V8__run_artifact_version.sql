-- The artifact version a binary-target run actually executed.
ALTER TABLE runs ADD COLUMN artifact_version integer;
