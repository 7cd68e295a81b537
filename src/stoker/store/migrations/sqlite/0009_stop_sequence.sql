-- Which stop string ended a completion (Anthropic's stop_sequence), kept with the result and
-- in the result cache; NULL when the model stopped on its own or ran out of tokens.
ALTER TABLE results ADD COLUMN stop_sequence TEXT;
ALTER TABLE result_cache ADD COLUMN stop_sequence TEXT;
