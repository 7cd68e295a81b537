-- The tools a model called (OpenAI's tool_calls objects as a JSON array; NULL when it called
-- none), kept with the result and in the result cache like its text.
ALTER TABLE results ADD COLUMN tool_calls TEXT;
ALTER TABLE result_cache ADD COLUMN tool_calls TEXT;
