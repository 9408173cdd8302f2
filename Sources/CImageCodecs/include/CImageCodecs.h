#ifndef MASKDM_CIMAGECODECS_H
#define MASKDM_CIMAGECODECS_H
#include <stddef.h>
#endif
