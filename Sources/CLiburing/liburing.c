// CLiburing has no code of its own: its header brings liburing to Swift.
#include "CLiburing.h"
