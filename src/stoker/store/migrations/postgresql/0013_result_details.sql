-- Details of a result beyond its text, kept with the result and in the result cache:
-- which stop string ended it (Anthropic's stop_sequence; NULL when the model stopped on its
-- own or ran out of tokens), and its tokens' log-probabilities when the request asked for
-- them (a JSON array of [token, logprob, [[alternative, logprob], ...]]).
ALTER TABLE results ADD COLUMN stop_sequence TEXT;
ALTER TABLE result_cache ADD COLUMN stop_sequence TEXT;
ALTER TABLE results ADD COLUMN logprobs TEXT;
ALTER TABLE result_cache ADD COLUMN logprobs TEXT;
