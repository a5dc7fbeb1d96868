"""Native mode: the stack's services as local processes under supervisord."""
