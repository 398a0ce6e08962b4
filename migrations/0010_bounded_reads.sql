-- Reads bounded by their page, whatever the plan (generic plans of prepared statements
-- included):
-- * a time bound of history is resolved to a seq with one probe of this index, ties in
--   one commit broken by seq in the index itself;
-- * a thread page is read in seq order from its root's replies.
CREATE INDEX messages_conversation_created_seq ON messages (conversation_id, created_at, seq);
DROP INDEX messages_conversation_created;
CREATE INDEX messages_reply_to_seq ON messages (reply_to, seq) WHERE reply_to IS NOT NULL;
DROP INDEX messages_reply_to;
