-- The test guest's own table, beside the services' on the same database.
-- Its version is the same as one of the services' migrations on purpose:
-- each component numbers its migrations as it likes.
CREATE TABLE guest_note (
    id BIGSERIAL PRIMARY KEY,
    body TEXT NOT NULL
);
