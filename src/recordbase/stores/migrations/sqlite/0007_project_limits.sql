-- Per-project rate-limit defaults: a key without its own rate or burst takes its project's,
-- else the deployment's (Settings.default_rate / default_burst). NULL: not set.
ALTER TABLE projects ADD COLUMN rate REAL;
ALTER TABLE projects ADD COLUMN burst INTEGER;
