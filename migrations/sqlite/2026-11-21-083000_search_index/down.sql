DROP TABLE message_search_tags;
