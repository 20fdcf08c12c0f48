"""The clearinghouse's database: a store per subdomain (`reviews`, `findings`) over one engine and
one set of tables, their write transactions serialised and units of work shared (`base`)."""
